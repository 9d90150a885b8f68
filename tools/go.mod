module github.com/unjuno/flm/tools

go 1.26.0
