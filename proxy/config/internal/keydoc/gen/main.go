// Command gen writes proxy/config/keydoc_gen.go; run it with
// go generate ./proxy/config (the directive is in proxy/config/reference.go).
package main

import (
	"log"
	"os"

	"opscore-sidecar/proxy/config/internal/keydoc"
)

func main() {
	src, err := keydoc.Generate(".", keydoc.Sources)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("keydoc_gen.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
