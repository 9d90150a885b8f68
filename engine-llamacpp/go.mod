module github.com/unjuno/flm/engine-llamacpp

go 1.26.0
