module github.com/unjuno/flm/engine-lmstudio

go 1.26.0
