module github.com/unjuno/flm/core

go 1.26.0
