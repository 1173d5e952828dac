package jobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golora/golora/internal/dirlock"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedServer is a NATS server with JetStream running inside this
// process, listening on loopback, its streams and buckets kept on disk.
type EmbeddedServer struct {
	srv *server.Server
}

// StartEmbedded starts a JetStream server storing its data under dir,
// listening on 127.0.0.1:port (0: a free port).
func StartEmbedded(dir string, port int) (*EmbeddedServer, error) {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: embedded NATS server: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "golora-embedded",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: embedded NATS server in %s: %w", dir, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("jobs: embedded NATS server in %s did not start within 30 s", dir)
	}
	return &EmbeddedServer{srv: srv}, nil
}

// URL returns the address clients connect to.
func (e *EmbeddedServer) URL() string { return e.srv.ClientURL() }

// Close stops the server and waits until it has stopped.
func (e *EmbeddedServer) Close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Conn is a connection to NATS, and the embedded server behind it when
// this process runs one.
type Conn struct {
	*nats.Conn
	server *EmbeddedServer
	lock   *dirlock.Lock
	dir    string
}

// urlFile, in an embedded server's directory, holds the URL of the server
// while the process running it lives.
const urlFile = "server.url"

// Connect connects to the NATS servers at url (comma-separated for a
// cluster) or, when embeddedDir is set, to the embedded server of that
// directory: the first process to ask starts it (and stops it on Close);
// others connect to it while it runs. The connection reconnects without
// limit, so that a cluster node's restart goes unnoticed.
func Connect(url, embeddedDir, name string) (*Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if embeddedDir == "" {
		if url == "" {
			return nil, errors.New("jobs: no NATS server: give a URL or an embedded server directory")
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return nil, fmt.Errorf("jobs: connecting to %s: %w", url, err)
		}
		return &Conn{Conn: nc}, nil
	}
	if err := os.MkdirAll(embeddedDir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		lock, err := dirlock.Acquire(embeddedDir)
		if err == nil {
			return startAndConnect(embeddedDir, lock, opts)
		}
		if !errors.Is(err, dirlock.ErrLocked) {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		// Another process runs the server: connect to it once it has
		// written its address.
		if b, err := os.ReadFile(filepath.Join(embeddedDir, urlFile)); err == nil {
			if nc, err := nats.Connect(strings.TrimSpace(string(b)), opts...); err == nil {
				return &Conn{Conn: nc}, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("jobs: %s is locked by another process whose NATS server does not answer", embeddedDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startAndConnect(dir string, lock *dirlock.Lock, opts []nats.Option) (*Conn, error) {
	srv, err := StartEmbedded(dir, 0)
	if err != nil {
		lock.Release()
		return nil, err
	}
	nc, err := nats.Connect(srv.URL(), opts...)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, urlFile), []byte(srv.URL()+"\n"), 0o644)
	}
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		srv.Close()
		lock.Release()
		return nil, fmt.Errorf("jobs: embedded NATS server in %s: %w", dir, err)
	}
	return &Conn{Conn: nc, server: srv, lock: lock, dir: dir}, nil
}

// Close drains the connection and, if this process runs the embedded
// server, stops it.
func (c *Conn) Close() {
	c.Conn.Drain()
	for c.Conn.IsDraining() {
		time.Sleep(10 * time.Millisecond)
	}
	c.Conn.Close()
	if c.server != nil {
		os.Remove(filepath.Join(c.dir, urlFile))
		c.server.Close()
		c.lock.Release()
	}
}
