module github.com/unjuno/flm/tools/enginefake

go 1.26.0
