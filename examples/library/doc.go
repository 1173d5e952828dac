// Package library holds the README's library example as a runnable Example,
// so that the snippet the README shows is compiled and run by go test.
package library
