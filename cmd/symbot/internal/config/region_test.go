package config

import (
	"os"
	"strings"
	"testing"
)

func TestRegionFromEnvironment(t *testing.T) {
	data, err := os.ReadFile("../../../../symbot.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	noRegion := strings.Replace(string(data), "  region: us-east-1\n", "", 1)
	if noRegion == string(data) {
		t.Fatal("the example has no `  region: us-east-1` line to remove")
	}
	env := func(region string) func(string) string {
		return func(k string) string {
			switch k {
			case "AWS_REGION":
				return region
			case "SLACK_BOT_TOKEN":
				return "xoxb-1"
			case "SLACK_APP_TOKEN":
				return "xapp-1"
			}
			return ""
		}
	}
	cfg, err := Parse("symbot.yml", []byte(noRegion), t.TempDir(), env("eu-west-1"))
	if err != nil {
		t.Fatalf("with AWS_REGION: %v", err)
	}
	if got, want := cfg.AWS.Region, "eu-west-1"; got != want {
		t.Errorf("region = %q, want %q", got, want)
	}
	_, err = Parse("symbot.yml", []byte(noRegion), t.TempDir(), env(""))
	if err == nil || !strings.Contains(err.Error(), "aws.region: missing") {
		t.Errorf("without a region anywhere: err = %v, want aws.region: missing", err)
	}
	cfg, err = Parse("symbot.yml", data, t.TempDir(), env("eu-west-1"))
	if err != nil || cfg.AWS.Region != "us-east-1" {
		t.Errorf("the file's region must win over AWS_REGION: %v %v", cfg, err)
	}
}
