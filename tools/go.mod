module github.com/unjuno/flm/tools

go 1.26.0

require (
	github.com/tsenart/vegeta/v12 v12.13.0
	github.com/unjuno/flm/core v1.0.0
	github.com/unjuno/flm/engine-llamacpp v0.6.0
	github.com/unjuno/flm/engine-lmstudio v0.6.0
	github.com/unjuno/flm/engine-ollama v0.6.0
	github.com/unjuno/flm/engine-vllm v0.6.0
	github.com/unjuno/flm/proxy v0.6.0
	github.com/unjuno/flm/tools/enginefake v0.1.0
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/mod v0.42.0
)

require (
	github.com/influxdata/tdigest v0.0.1 // indirect
	github.com/josharian/intern v1.0.0 // indirect
	github.com/mailru/easyjson v0.7.7 // indirect
	github.com/rs/dnscache v0.0.0-20230804202142-fc85eb664529 // indirect
	golang.org/x/net v0.63.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
