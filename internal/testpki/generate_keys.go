//go:build ignore

// Generate the fixed RSA test keys that testpki hands out: RSA-2048 generation takes long enough to slow every
// test that needs a key, so the keys are made once and committed.
//
//	go run generate_keys.go [-n 16]
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

func main() {
	n := flag.Int("n", 16, "number of RSA-2048 keys")
	dir := flag.String("dir", "testdata", "output directory")
	flag.Parse()
	for i := range *n {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			log.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			log.Fatal(err)
		}
		name := filepath.Join(*dir, fmt.Sprintf("rsa2048-%02d.pem", i))
		data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(name, data, 0o600); err != nil {
			log.Fatal(err)
		}
		fmt.Println("wrote", name)
	}
}
