package legacy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/secret"
)

// Where the prototype kept its AES key.
const (
	KeychainService = "FLM"
	KeychainAccount = "encryption_key"
	KeyFileName     = "encryption_key.bin"
)

type aesKey struct {
	source string
	key    []byte
}

// aesKeys finds the prototype's AES key candidates: the keychain entry
// (base64 text), then <dir>/encryption_key.bin (32 raw bytes). A keychain
// that is not there is not an error; a locked or hung one is.
func aesKeys(ctx context.Context, dir string, o Options) ([]aesKey, error) {
	var out []aesKey
	if o.Keychain != nil {
		v, err := o.Keychain(ctx, KeychainService, KeychainAccount)
		switch {
		case err == nil:
			k, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(v)))
			if derr != nil || len(k) != 32 {
				k = v // some builds stored the raw bytes
			}
			if len(k) == 32 {
				out = append(out, aesKey{"keychain", k})
			}
		case errors.Is(err, secret.ErrNotFound), errors.Is(err, secret.ErrUnavailable):
		default:
			return nil, flmerr.Wrap(err, flmerr.DBKeyUnavailable, "read the prototype's AES key from the OS keychain (service %q, account %q)", KeychainService, KeychainAccount)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, KeyFileName)); err == nil {
		if len(b) == 32 {
			out = append(out, aesKey{"file", b})
		} else if k, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b))); derr == nil && len(k) == 32 {
			out = append(out, aesKey{"file", k})
		}
	}
	return out, nil
}

// decrypt opens one encrypted_key, stored as raw nonce(12)‖ciphertext+tag
// or as the base64 text of those bytes.
func decrypt(gcm cipher.AEAD, blob []byte) ([]byte, bool) {
	var forms [][]byte
	if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(blob))); err == nil {
		forms = append(forms, b)
	}
	forms = append(forms, blob)
	for _, f := range forms {
		if len(f) < gcm.NonceSize()+gcm.Overhead() {
			continue
		}
		if p, err := gcm.Open(nil, f[:gcm.NonceSize()], f[gcm.NonceSize():], nil); err == nil {
			return p, true
		}
	}
	return nil, false
}

// checkKeys validates key_hash values (hex SHA-256, no duplicates) and,
// with an AES key, decrypts each key to verify SHA-256(plaintext) ==
// key_hash. Plaintexts are wiped after the comparison.
func (s *Snapshot) checkKeys(ctx context.Context, enc [][]byte, o Options) error {
	seen := map[string]string{}
	for i := range s.Keys {
		k := &s.Keys[i]
		h := strings.ToLower(strings.TrimSpace(k.Hash))
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return badInput("%s: api key %s has a key_hash that is not a hex SHA-256; nothing was read", s.Path, clip(k.ID))
		}
		if other, dup := seen[h]; dup {
			return badInput("%s: api keys %s and %s have the same key_hash; FLM keeps each key once: delete one of them in the prototype (or a copy of its flm.db) and retry", s.Path, clip(other), clip(k.ID))
		}
		seen[h] = k.ID
		k.Hash = h
		k.Check = Unverified
	}
	s.AESKeySource = "none"
	cands, err := aesKeys(ctx, filepath.Dir(s.Path), o)
	if err != nil {
		return err
	}
	if len(cands) == 0 || len(s.Keys) == 0 {
		if len(cands) > 0 {
			s.AESKeySource = cands[0].source
		}
		return nil
	}
	var tried []string
	for _, c := range cands {
		checks, opened, attempted := verifyWith(c.key, s.Keys, enc)
		if attempted == 0 {
			// Every blob was over MaxEncryptedKey: nothing to judge the
			// AES key by; the keys stay Unverified.
			s.AESKeySource = c.source
			return nil
		}
		if opened == 0 {
			tried = append(tried, c.source)
			continue
		}
		for i := range s.Keys {
			s.Keys[i].Check = checks[i]
		}
		s.AESKeySource = c.source
		return nil
	}
	return badInput("%s: the prototype's AES key (from %s) opens none of its %d api keys: it is the wrong key (another install's?). Remove it, or give the right %s, and retry; nothing was changed", s.Path, strings.Join(tried, " and "), len(s.Keys), KeyFileName)
}

// verifyWith decrypts every key whose blob was read (not over
// MaxEncryptedKey) with key: the outcomes, how many opened, how many were
// tried.
func verifyWith(key []byte, keys []Key, enc [][]byte) ([]string, int, int) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, 0, 0
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, 0, 0
	}
	out := make([]string, len(keys))
	opened, attempted := 0, 0
	for i, k := range keys {
		if k.EncryptedSize > MaxEncryptedKey {
			out[i] = Unverified
			continue
		}
		attempted++
		plain, ok := decrypt(gcm, enc[i])
		if !ok {
			out[i] = Undecryptable
			continue
		}
		opened++
		sum := sha256.Sum256(plain)
		want, _ := hex.DecodeString(k.Hash)
		if subtle.ConstantTimeCompare(sum[:], want) == 1 {
			out[i] = Verified
		} else {
			out[i] = Mismatch
		}
		clear(plain)
	}
	return out, opened, attempted
}
