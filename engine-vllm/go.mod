module github.com/unjuno/flm/engine-vllm

go 1.26.0
