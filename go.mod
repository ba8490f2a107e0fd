module github.com/amx-dev/amx

go 1.26.8

require (
	golang.org/x/sys v0.28.0
	gopkg.in/yaml.v3 v3.0.1
)
