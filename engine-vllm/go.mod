module github.com/unjuno/flm/engine-vllm

go 1.26.0

require github.com/unjuno/flm/core v1.0.0
