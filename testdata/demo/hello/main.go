// Command hello is the program of the demo image: a static binary that needs
// nothing else in the image. It prints the message of the day the image was
// given, and its environment's greeting.
package main

import (
	"fmt"
	"os"
)

func main() {
	motd, err := os.ReadFile("/etc/motd")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	fmt.Printf("%s, from an image bricklayer made.\n%s", os.Getenv("GREETING"), motd)
}
