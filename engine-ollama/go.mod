module github.com/unjuno/flm/engine-ollama

go 1.26.0
