package main

import (
	"context"
	"flag"
	"os"
	"time"

	"mastfs/ftps"
)

const checkExamples = `  mastfs check
  mastfs check --remote-dir /anonymous/anonymous12345
  mastfs check --host 127.0.0.1 --port 2121 --ca-file server.pem
`

func cmdCheck(args []string) error {
	var s serverFlags
	var l logFlags
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	s.register(fset)
	l.register(fset)
	if err := parse(fset, args, checkExamples); err != nil {
		return err
	}
	log, closeLog, err := l.logger()
	if err != nil {
		return err
	}
	defer closeLog.Close()
	cfg, err := s.config(log, os.Stdin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return ftps.Check(ctx, cfg, s.remoteDir, os.Stdout)
}
