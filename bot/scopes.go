// The bot token scopes symbot needs, as manifest.yml lists them.

package bot

// RequiredScopes are the bot token scopes symbot uses, exactly those listed
// in manifest.yml:
//   - commands: the /sym slash command
//   - chat:write: approval messages, thread replies, updates, ephemeral answers
//   - im:write: conversations.open for direct messages
//   - users:read: users.info (guest and bot flags, names)
//   - users:read.email: the email in users.info, to find the Okta user
var RequiredScopes = []string{"commands", "chat:write", "im:write", "users:read", "users:read.email"}
