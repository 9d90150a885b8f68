module github.com/unjuno/flm/proxy

go 1.26.0
