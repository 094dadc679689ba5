package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dockerfile is the parsed deploy/docker/Dockerfile: its stages'
// instructions, continuation lines joined.
type dockerfile struct {
	stages [][]instruction
}

type instruction struct {
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	var cur string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		if s := strings.TrimSpace(cur); s != "" {
			cmd, args, _ := strings.Cut(s, " ")
			in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
			if in.cmd == "FROM" {
				df.stages = append(df.stages, nil)
			}
			if len(df.stages) == 0 {
				t.Fatalf("%s: %s before the first FROM", path, in.cmd)
			}
			df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], in)
		}
		cur = ""
	}
	return df
}

// find returns the args of the instructions cmd in stage.
func (df dockerfile) find(stage int, cmd string) []string {
	var out []string
	for _, in := range df.stages[stage] {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// execForm parses a JSON-array instruction argument (exec form: no shell).
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Fatalf("%s %s: not the exec form [\"...\"] (the image has no shell): %v", what, args, err)
	}
	return argv
}

// imageHealthcheck is the argv of the image's HEALTHCHECK.
func imageHealthcheck(t *testing.T, df dockerfile) []string {
	t.Helper()
	hc := df.find(len(df.stages)-1, "HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("final stage: %d HEALTHCHECK instructions, want 1", len(hc))
	}
	_, cmd, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s: no CMD", hc[0])
	}
	return execForm(t, "HEALTHCHECK CMD", strings.TrimSpace(cmd))
}

// containerConfig is deploy/docker/symbot.yml, the paths the image expects.
type containerConfig struct {
	Store struct{ Path string }
	Admin struct{ Socket string }
	HTTP  struct{ Listen string }
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t, filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	if len(df.stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a runtime stage", len(df.stages))
	}
	final := len(df.stages) - 1
	if from := df.find(final, "FROM"); len(from) != 1 || from[0] != "scratch" {
		t.Errorf("runtime stage FROM %v: want scratch (a static binary needs nothing else)", from)
	}
	for _, in := range df.stages[final] {
		if in.cmd == "RUN" || in.cmd == "SHELL" {
			t.Errorf("runtime stage has %s %s: the image has no shell", in.cmd, in.args)
		}
	}
	var built bool
	for _, run := range df.find(0, "RUN") {
		if strings.Contains(run, "sh deploy/build.sh /out/symbot") {
			built = true
		}
	}
	if !built {
		t.Error("the build stage does not run deploy/build.sh (the one reproducible static build)")
	}
	var copied bool
	for _, c := range df.find(final, "COPY") {
		if c == "--from=build /out/symbot /usr/local/bin/symbot" {
			copied = true
		}
	}
	if !copied {
		t.Error("the runtime stage does not copy the built binary to /usr/local/bin/symbot")
	}

	user := df.find(final, "USER")
	if len(user) != 1 {
		t.Fatalf("USER: %v, want one", user)
	}
	uid, _, _ := strings.Cut(user[0], ":")
	if uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %s: want a numeric non-root uid (runAsNonRoot can check only numbers)", user[0])
	}

	var cfg containerConfig
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "symbot.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	volume := df.find(final, "VOLUME")
	if len(volume) != 1 {
		t.Fatalf("VOLUME: %v, want one", volume)
	}
	vol := execForm(t, "VOLUME", volume[0])
	if len(vol) != 1 || filepath.Dir(cfg.Store.Path) != vol[0] || filepath.Dir(cfg.Admin.Socket) != vol[0] {
		t.Errorf("VOLUME %v: want the directory of store.path %s and admin.socket %s", vol, cfg.Store.Path, cfg.Admin.Socket)
	}
	if _, port, _ := strings.Cut(cfg.HTTP.Listen, ":"); !slices.Contains(df.find(final, "EXPOSE"), port) {
		t.Errorf("EXPOSE %v lacks the http.listen port %s", df.find(final, "EXPOSE"), port)
	}
	if env := df.find(final, "ENV"); !slices.Contains(env, "SYMBOT_CONFIG=/etc/symbot/symbot.yml") {
		t.Errorf("ENV %v: want SYMBOT_CONFIG=/etc/symbot/symbot.yml", env)
	}

	entry := df.find(final, "ENTRYPOINT")
	if len(entry) != 1 || !slices.Equal(execForm(t, "ENTRYPOINT", entry[0]), []string{"/usr/local/bin/symbot"}) {
		t.Errorf("ENTRYPOINT %v: want [\"/usr/local/bin/symbot\"]", entry)
	}
	if cmd := df.find(final, "CMD"); len(cmd) != 1 || !slices.Equal(execForm(t, "CMD", cmd[0]), []string{"run"}) {
		t.Errorf("CMD %v: want [\"run\"]", cmd)
	}
	hc := imageHealthcheck(t, df)
	if !slices.Equal(hc, []string{"/usr/local/bin/symbot", "healthcheck"}) {
		t.Errorf("HEALTHCHECK CMD %q: want symbot healthcheck", hc)
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{"!go.mod", "!go.sum", "!cmd/", "!deploy/build.sh"} {
		if !strings.Contains(string(ignore), "\n"+keep+"\n") {
			t.Errorf("Dockerfile.dockerignore does not keep %s in the build context", keep)
		}
	}
}

// TestImageHealthcheck runs the image's health check command, as the image
// runs it (SYMBOT_CONFIG set, no flags), against a running symbot: alive
// passes; --ready fails while Slack is unreachable, saying why; nothing
// listening fails.
func TestImageHealthcheck(t *testing.T) {
	df := parseDockerfile(t, filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	argv := imageHealthcheck(t, df)
	s := startSymbot(t)
	env := append([]string{"SYMBOT_CONFIG=" + s.cfgPath}, s.env...)
	if code, out := symbotCmd(t, env, argv[1:]...); code != 0 || !strings.Contains(out, "/healthz: ok") {
		t.Errorf("%v: exit %d: %s", argv, code, out)
	}
	if code, out := symbotCmd(t, env, append(argv[1:], "--ready")...); code != 1 || !strings.Contains(out, "slack socket mode is not connected") {
		t.Errorf("%v --ready while Slack is unreachable: exit %d: %s", argv, code, out)
	}
	if code, out := symbotCmd(t, nil, append(argv[1:], "--url", "http://127.0.0.1:1")...); code != 1 {
		t.Errorf("%v against nothing: exit %d: %s", argv, code, out)
	}
}

// composeFile is the part of a compose file the tests check.
type composeFile struct {
	Services map[string]struct {
		Image       string
		Build       struct{ Context, Dockerfile string }
		Command     []string
		Deploy      struct{ Replicas int }
		EnvFile     string            `json:"env_file"`
		Environment map[string]string `json:"environment"`
		Volumes     []string
		Tmpfs       []string
		ReadOnly    bool     `json:"read_only"`
		User        string   `json:"user"`
		CapDrop     []string `json:"cap_drop"`
		SecurityOpt []string `json:"security_opt"`
		DependsOn   map[string]struct {
			Condition string
		} `json:"depends_on"`
		Healthcheck struct{ Test []string }
	}
	Volumes map[string]any
}

func TestComposeFiles(t *testing.T) {
	df := parseDockerfile(t, filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	hc := append([]string{"CMD"}, imageHealthcheck(t, df)...)
	tests := []struct {
		file     string
		replicas int
		ha       bool
	}{
		{file: "compose.yml", replicas: 1},
		{file: "compose.ha.yml", replicas: 3, ha: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var cf composeFile
			if err := yaml.Unmarshal(data, &cf); err != nil {
				t.Fatal(err)
			}
			s, ok := cf.Services["symbot"]
			if !ok {
				t.Fatal("no symbot service")
			}
			replicas := max(s.Deploy.Replicas, 1)
			if replicas != tt.replicas {
				t.Errorf("replicas: got %d, want %d", replicas, tt.replicas)
			}
			if s.Build.Context != "../.." || s.Build.Dockerfile != "deploy/docker/Dockerfile" {
				t.Errorf("build: %+v, want the repository root and deploy/docker/Dockerfile", s.Build)
			}
			if len(s.Command) == 0 {
				t.Fatal("no command")
			}
			if code, out := symbotCmd(t, nil, "help", s.Command[0]); code != 0 {
				t.Errorf("command %v: not a symbot command: %s", s.Command, out)
			}
			if !slices.Equal(s.Healthcheck.Test, hc) {
				t.Errorf("healthcheck %q: want the image's %q", s.Healthcheck.Test, hc)
			}
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("read_only %v, cap_drop %v, security_opt %v: want a read-only root, no capabilities, no-new-privileges", s.ReadOnly, s.CapDrop, s.SecurityOpt)
			}
			if uid, _, _ := strings.Cut(s.User, ":"); uid == "" || uid == "0" {
				t.Errorf("user %q: want the image's non-root user", s.User)
			}
			if s.EnvFile != "symbot.env" {
				t.Errorf("env_file %q: want symbot.env (tokens stay out of the compose file)", s.EnvFile)
			}
			if _, err := os.Stat(filepath.Join(repoRoot, "deploy", "docker", "symbot.env.example")); err != nil {
				t.Error(err)
			}
			if !slices.Contains(s.Volumes, "./symbot.yml:/etc/symbot/symbot.yml:ro") {
				t.Errorf("volumes %v: want the config mounted read-only at /etc/symbot/symbot.yml", s.Volumes)
			}
			url := s.Environment["SYMBOT_DATABASE_URL"]
			if tt.ha {
				if !strings.HasPrefix(url, "postgres://") {
					t.Errorf("SYMBOT_DATABASE_URL %q: want a postgres:// URL", url)
				}
				if s.DependsOn["postgres"].Condition != "service_healthy" {
					t.Errorf("depends_on %+v: want postgres healthy first", s.DependsOn)
				}
				if _, ok := cf.Services["postgres"]; !ok {
					t.Error("no postgres service")
				}
				for _, v := range s.Volumes {
					if strings.HasSuffix(v, ":/var/lib/symbot") {
						t.Errorf("volume %s: replicas on PostgreSQL keep no store of their own", v)
					}
				}
			} else {
				if url != "" {
					t.Errorf("SYMBOT_DATABASE_URL %q on the single-node bbolt setup", url)
				}
				if !slices.Contains(s.Volumes, "symbot-data:/var/lib/symbot") {
					t.Errorf("volumes %v: want the store volume at /var/lib/symbot", s.Volumes)
				}
				if _, ok := cf.Volumes["symbot-data"]; !ok {
					t.Error("the symbot-data volume is not declared")
				}
			}
		})
	}
}
