package proxyctl

import "testing"

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if !DefaultConfig().Loopback() || DefaultConfig().HTTPSPort() != 0 {
		t.Fatal("default must be loopback local-http")
	}
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	ok := []Config{
		mod(func(c *Config) { c.Mode = DevSelfSigned; c.Port = 9000; c.Bind = "0.0.0.0" }),
		mod(func(c *Config) { c.Bind = "::1" }),
		mod(func(c *Config) { c.Egress = Egress{Mode: EgressSOCKS5, SOCKS5Endpoint: "127.0.0.1:1080"} }),
		mod(func(c *Config) { c.Mode = HTTPSACME; c.ACMEEmail = "a@b.c"; c.ACMEDomain = "x.example" }),
	}
	for i, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("#%d: %v", i, err)
		}
	}
	if c := ok[0]; c.HTTPSPort() != 9001 || c.Loopback() {
		t.Error("dev-selfsigned on 0.0.0.0:9000 must use 9001 and not be loopback")
	}
	bad := []Config{
		mod(func(c *Config) { c.Mode = "ftp" }),
		mod(func(c *Config) { c.Port = 0 }),
		mod(func(c *Config) { c.Port = 70000 }),
		mod(func(c *Config) { c.Mode = DevSelfSigned; c.Port = 65535 }),
		mod(func(c *Config) { c.Bind = "localhost" }),
		mod(func(c *Config) { c.Egress.Mode = EgressSOCKS5 }),
		mod(func(c *Config) { c.Egress.Mode = "vpn" }),
		mod(func(c *Config) { c.Mode = HTTPSACME }),
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("bad #%d accepted: %+v", i, c)
		}
	}
}

func TestDefaultBindFollowsTheMode(t *testing.T) {
	for m, want := range map[Mode]string{
		LocalHTTP: "127.0.0.1", DevSelfSigned: "127.0.0.1", PackagedCA: "127.0.0.1", HTTPSACME: "0.0.0.0",
	} {
		if got := DefaultBind(m); got != want {
			t.Errorf("DefaultBind(%s) = %q, want %q", m, got, want)
		}
	}
}
