package main

// Blank imports keep the chosen dependency versions pinned in go.mod while the
// adapters that use them are being written. Remove once every one is imported.
import (
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	_ "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	_ "github.com/aws/aws-sdk-go-v2/service/sts"
	_ "github.com/gorilla/websocket"
	_ "github.com/okta/okta-sdk-golang/v2/okta"
	_ "github.com/slack-go/slack"
	_ "github.com/slack-go/slack/socketmode"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
)
