package bot_test

import (
	"os"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/symbot/symbot/bot"
)

func TestManifest(t *testing.T) {
	raw, err := os.ReadFile("../manifest.yml")
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	var m struct {
		Features struct {
			BotUser struct {
				DisplayName string `yaml:"display_name"`
			} `yaml:"bot_user"`
			SlashCommands []struct {
				Command     string `yaml:"command"`
				Description string `yaml:"description"`
				UsageHint   string `yaml:"usage_hint"`
				URL         string `yaml:"url"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuth struct {
			Scopes struct {
				Bot  []string `yaml:"bot"`
				User []string `yaml:"user"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity struct {
				IsEnabled bool   `yaml:"is_enabled"`
				URL       string `yaml:"request_url"`
			} `yaml:"interactivity"`
			OrgDeploy  *bool `yaml:"org_deploy_enabled"`
			SocketMode bool  `yaml:"socket_mode_enabled"`
		} `yaml:"settings"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	got, want := slices.Sorted(slices.Values(m.OAuth.Scopes.Bot)), slices.Sorted(slices.Values(bot.RequiredScopes))
	if !slices.Equal(got, want) {
		t.Errorf("manifest bot scopes = %v, want RequiredScopes %v", got, want)
	}
	if len(m.OAuth.Scopes.User) != 0 {
		t.Errorf("manifest asks for user scopes %v; symbot needs none", m.OAuth.Scopes.User)
	}
	if !m.Settings.SocketMode || !m.Settings.Interactivity.IsEnabled || m.Settings.Interactivity.URL != "" {
		t.Errorf("settings = %+v, want socket mode and interactivity on, no request URL", m.Settings)
	}
	if m.Settings.OrgDeploy == nil || *m.Settings.OrgDeploy {
		t.Error("org_deploy_enabled must be present and false")
	}
	if m.Features.BotUser.DisplayName == "" {
		t.Error("no bot user")
	}
	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("slash commands = %+v, want /sym only", m.Features.SlashCommands)
	}
	c := m.Features.SlashCommands[0]
	if c.Command != "/sym" || c.Description == "" || c.UsageHint == "" || c.URL != "" {
		t.Errorf("slash command = %+v, want /sym with description and usage hint and no URL (Socket Mode)", c)
	}
}
