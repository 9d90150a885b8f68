module github.com/unjuno/flm/cli

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/ncruces/go-sqlite3 v0.37.0
	github.com/ncruces/go-sqlite3/gormlite v0.34.0
	gorm.io/gorm v1.31.2
)
