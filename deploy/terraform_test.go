package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

const tfModule = "terraform/runtime-connector"

// tfModuleBody is the runtime-connector module's files, merged.
func tfModuleBody(t *testing.T) hcl.Body {
	t.Helper()
	p := hclparse.NewParser()
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", tfModule, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s: %v", tfModule, err)
	}
	var bodies []*hcl.File
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		bodies = append(bodies, file)
	}
	return hcl.MergeFiles(bodies)
}

// tfEval evaluates the module's locals and resource attributes for the
// given input variables and AWS account, as terraform plan would, with no
// provider: the policies are built from variables and data sources only.
type tfEval struct {
	ctx       *hcl.EvalContext
	resources map[string]*hclsyntax.Body // "type.name" -> body
}

func newTFEval(t *testing.T, inputs map[string]cty.Value, account, region string) *tfEval {
	t.Helper()
	body := tfModuleBody(t)
	content, diags := body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "terraform"}, {Type: "variable", LabelNames: []string{"name"}}, {Type: "locals"},
		{Type: "data", LabelNames: []string{"type", "name"}}, {Type: "resource", LabelNames: []string{"type", "name"}},
		{Type: "output", LabelNames: []string{"name"}},
	}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	vars := map[string]cty.Value{}
	ctx := &hcl.EvalContext{
		Functions: map[string]function.Function{
			"coalesce": stdlib.CoalesceFunc, "length": stdlib.LengthFunc, "concat": stdlib.ConcatFunc,
			"jsonencode": stdlib.JSONEncodeFunc, "merge": stdlib.MergeFunc,
		},
		Variables: map[string]cty.Value{
			"data": cty.ObjectVal(map[string]cty.Value{
				"aws_partition":       cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"partition": cty.StringVal("aws")})}),
				"aws_caller_identity": cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"account_id": cty.StringVal(account)})}),
				"aws_region":          cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(region), "region": cty.StringVal(region)})}),
			}),
		},
	}
	var locals []*hcl.Attribute
	ev := &tfEval{ctx: ctx, resources: map[string]*hclsyntax.Body{}}
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			name := b.Labels[0]
			attrs, _ := b.Body.JustAttributes()
			v, ok := inputs[name]
			if d, hasDefault := attrs["default"]; !ok && hasDefault {
				var diags hcl.Diagnostics
				if v, diags = d.Expr.Value(nil); diags.HasErrors() {
					t.Fatalf("variable %s default: %s", name, diags.Error())
				}
			} else if !ok {
				t.Fatalf("variable %s has no default and the test gives none", name)
			}
			// Terraform converts every value to the variable's type.
			if ta, ok := attrs["type"]; ok {
				ty, diags := typeexpr.TypeConstraint(ta.Expr)
				if diags.HasErrors() {
					t.Fatalf("variable %s type: %s", name, diags.Error())
				}
				var err error
				if v, err = convert.Convert(v, ty); err != nil {
					t.Fatalf("variable %s: %v", name, err)
				}
			}
			vars[name] = v
		case "locals":
			attrs, diags := b.Body.JustAttributes()
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			for _, a := range attrs {
				locals = append(locals, a)
			}
		case "resource":
			ev.resources[b.Labels[0]+"."+b.Labels[1]] = b.Body.(*hclsyntax.Body)
		}
	}
	for name := range inputs {
		if _, ok := vars[name]; !ok {
			t.Fatalf("the module has no variable %s", name)
		}
	}
	ctx.Variables["var"] = cty.ObjectVal(vars)
	// Locals refer to each other: evaluate them until all are known.
	values := map[string]cty.Value{}
	for pass := 0; len(values) < len(locals); pass++ {
		if pass > len(locals) {
			var missing []string
			for _, a := range locals {
				if _, ok := values[a.Name]; !ok {
					_, diags := a.Expr.Value(ctx)
					missing = append(missing, fmt.Sprintf("%s: %s", a.Name, diags.Error()))
				}
			}
			t.Fatalf("locals that cannot be evaluated:\n%s", strings.Join(missing, "\n"))
		}
		ctx.Variables["local"] = cty.ObjectVal(values)
		for _, a := range locals {
			if _, ok := values[a.Name]; ok {
				continue
			}
			if v, diags := a.Expr.Value(ctx); !diags.HasErrors() {
				values[a.Name] = v
			}
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(values)
	return ev
}

// attr evaluates a resource's attribute; ok is false when the resource is
// not created (count = 0) or lacks it.
func (ev *tfEval) attr(t *testing.T, resource, name string) (cty.Value, bool) {
	t.Helper()
	body, ok := ev.resources[resource]
	if !ok {
		t.Fatalf("no resource %s", resource)
	}
	if c, ok := body.Attributes["count"]; ok {
		n, diags := c.Expr.Value(ev.ctx)
		if diags.HasErrors() {
			t.Fatalf("%s.count: %s", resource, diags.Error())
		}
		if n.Equals(cty.Zero).True() {
			return cty.NilVal, false
		}
	}
	a, ok := body.Attributes[name]
	if !ok {
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(ev.ctx)
	if diags.HasErrors() {
		t.Fatalf("%s.%s: %s", resource, name, diags.Error())
	}
	return v, true
}

// policy evaluates a resource's policy attribute (a jsonencode string) and
// decodes it.
func (ev *tfEval) policy(t *testing.T, resource, name string) (any, bool) {
	t.Helper()
	v, ok := ev.attr(t, resource, name)
	if !ok {
		return nil, false
	}
	return decodeJSON(t, v.AsString()), true
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var out any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
	return out
}

// asJSON round-trips v through JSON so that it compares with decodeJSON's.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, string(b))
}

// iamPolicyOutput is the part of `symbot iam-policy` the module must match.
type iamPolicyOutput struct {
	Principal       string          `json:"principal"`
	PrincipalPolicy json.RawMessage `json:"principal_policy"`
	Roles           []struct {
		RoleARN                   string          `json:"role_arn"`
		MaxSessionDurationSeconds int64           `json:"max_session_duration_seconds"`
		TrustPolicy               json.RawMessage `json:"trust_policy"`
		PermissionPolicy          json.RawMessage `json:"permission_policy"`
	} `json:"roles"`
	Notes []string `json:"notes"`
}

// TestTerraformMatchesIAMPolicy evaluates the runtime-connector module for
// several inputs and checks that every role's trust and permission policy,
// its session length and the principal policy are exactly what `symbot
// iam-policy` prints for the same configuration.
func TestTerraformMatchesIAMPolicy(t *testing.T) {
	const account, region = "123456789012", "eu-west-1"
	tests := []struct {
		name       string
		inputs     map[string]cty.Value
		principal  string // --principal
		tag        string // --tag
		hop        string
		session    string
		kmsKey     string
		secretName string
	}{
		{name: "defaults: secret by name, account root trusted", session: "1h"},
		{
			name:       "principal, custom names, 4h sessions",
			inputs:     map[string]cty.Value{"trusted_principal": cty.StringVal("arn:aws:iam::123456789012:role/symbot-node"), "role_name": cty.StringVal("sym-conn"), "secret_name": cty.StringVal("prod/okta"), "session_duration_seconds": cty.NumberIntVal(4 * 3600)},
			principal:  "arn:aws:iam::123456789012:role/symbot-node",
			session:    "4h",
			secretName: "prod/okta",
		},
		{
			name:    "secrets by tag",
			inputs:  map[string]cty.Value{"secret_tags": cty.MapVal(map[string]cty.Value{"symbot": cty.StringVal("okta-token")})},
			tag:     "symbot=okta-token",
			session: "1h",
		},
		{
			name:      "hop role",
			inputs:    map[string]cty.Value{"hop_role_name": cty.StringVal("symbot-hop"), "trusted_principal": cty.StringVal("arn:aws:iam::123456789012:user/symbot")},
			principal: "arn:aws:iam::123456789012:user/symbot",
			hop:       "symbot-hop",
			session:   "1h",
		},
		{
			name:    "customer managed KMS key",
			inputs:  map[string]cty.Value{"kms_key_arn": cty.StringVal("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")},
			kmsKey:  "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			session: "1h",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inputs := map[string]cty.Value{"external_id": cty.StringVal("symbot-7f3c9a2e-prod")}
			for k, v := range tt.inputs {
				inputs[k] = v
			}
			ev := newTFEval(t, inputs, account, region)
			roleName, secret := "symbot-runtime-connector", "symbot/okta-api-token"
			if v, ok := tt.inputs["role_name"]; ok {
				roleName = v.AsString()
			}
			if tt.secretName != "" {
				secret = tt.secretName
			}
			hops := "[]"
			if tt.hop != "" {
				hops = fmt.Sprintf("[arn:aws:iam::%s:role/%s]", account, tt.hop)
			}
			aws := fmt.Sprintf("  region: %s\n  role_arn: arn:aws:iam::%s:role/%s\n  external_id: symbot-7f3c9a2e-prod\n  hop_roles: %s\n  session_duration: %s\n", region, account, roleName, hops, tt.session)
			cfg := testConfig(t, shortTempDir(t), aws, "")
			if err := os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "token_secret: symbot/okta-api-token", "token_secret: "+secret, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"iam-policy", "--config", cfg}
			if tt.principal != "" {
				args = append(args, "--principal", tt.principal)
			}
			if tt.tag != "" {
				args = append(args, "--tag", tt.tag)
			}
			code, out := symbotCmd(t, []string{"SLACK_BOT_TOKEN=", "SLACK_APP_TOKEN="}, args...)
			if code != 0 {
				t.Fatalf("symbot %v: exit %d: %s", args, code, out)
			}
			var want iamPolicyOutput
			if err := json.Unmarshal([]byte(out), &want); err != nil {
				t.Fatalf("%v: %s", err, out)
			}

			principalPolicy := decodeJSON(t, mustEval(t, ev, "local.principal_policy"))
			if w := decodeJSON(t, string(want.PrincipalPolicy)); !reflect.DeepEqual(principalPolicy, w) {
				t.Errorf("principal_policy:\n got %v\nwant %v", principalPolicy, w)
			}

			roles := []string{"aws_iam_role.connector"}
			policies := []string{"aws_iam_role_policy.connector"}
			if tt.hop != "" {
				roles = append([]string{"aws_iam_role.hop"}, roles...)
				policies = append([]string{"aws_iam_role_policy.hop"}, policies...)
			} else if _, ok := ev.attr(t, "aws_iam_role.hop", "name"); ok {
				t.Error("a hop role is created although hop_role_name is null")
			}
			if len(want.Roles) != len(roles) {
				t.Fatalf("symbot iam-policy has %d roles, the module %d", len(want.Roles), len(roles))
			}
			for i, w := range want.Roles {
				name, _ := ev.attr(t, roles[i], "name")
				if got := fmt.Sprintf("arn:aws:iam::%s:role/%s", account, name.AsString()); got != w.RoleARN {
					t.Errorf("%s: role %s, want %s", roles[i], got, w.RoleARN)
				}
				trust, _ := ev.policy(t, roles[i], "assume_role_policy")
				if wt := decodeJSON(t, string(w.TrustPolicy)); !reflect.DeepEqual(trust, wt) {
					t.Errorf("%s trust policy:\n got %v\nwant %v", roles[i], trust, wt)
				}
				perm, _ := ev.policy(t, policies[i], "policy")
				wp := decodeJSON(t, string(w.PermissionPolicy))
				if tt.kmsKey != "" && roles[i] == "aws_iam_role.connector" {
					// iam-policy notes kms:Decrypt; the module grants it.
					var noted bool
					for _, n := range want.Notes {
						noted = noted || strings.Contains(n, "kms:Decrypt") && strings.Contains(n, "secretsmanager.<region>.amazonaws.com")
					}
					if !noted {
						t.Errorf("symbot iam-policy no longer notes kms:Decrypt: %q", want.Notes)
					}
					stmts := wp.(map[string]any)["Statement"].([]any)
					wp.(map[string]any)["Statement"] = append(stmts, asJSON(t, map[string]any{
						"Sid": "DecryptOktaTokenSecret", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": tt.kmsKey,
						"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": "secretsmanager." + region + ".amazonaws.com"}},
					}))
				}
				if !reflect.DeepEqual(perm, wp) {
					t.Errorf("%s permission policy:\n got %v\nwant %v", policies[i], perm, wp)
				}
				d, _ := ev.attr(t, roles[i], "max_session_duration")
				if got, _ := d.AsBigFloat().Int64(); got < w.MaxSessionDurationSeconds {
					t.Errorf("%s max_session_duration %d, want at least %d", roles[i], got, w.MaxSessionDurationSeconds)
				}
			}
			if s, ok := ev.attr(t, "aws_secretsmanager_secret.okta_token", "name"); !ok || s.AsString() != secret {
				t.Errorf("secret %v, want one named %s", s, secret)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mustEval evaluates expr (e.g. local.principal_policy) and returns it as
// JSON.
func mustEval(t *testing.T, ev *tfEval, expr string) string {
	t.Helper()
	e, diags := hclsyntax.ParseExpression([]byte(expr), "test", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := e.Value(ev.ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %s", expr, diags.Error())
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTerraformFmt runs `terraform fmt -check` when terraform is installed.
func TestTerraformFmt(t *testing.T) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed")
	}
	cmd := exec.Command(tf, "fmt", "-check", "-diff", "-recursive", filepath.Join(repoRoot, "deploy", "terraform"))
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("terraform fmt -check: %v\n%s", err, out)
	}
}
