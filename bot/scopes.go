// The bot token scopes symbot needs, as manifest.yml lists them.

package bot

// RequiredScopes are the bot token scopes symbot uses, exactly those listed
// in manifest.yml:
//   - commands: the /sym slash command
//   - chat:write: approval messages, thread replies, updates, ephemeral answers
//   - im:write: conversations.open for direct messages
//   - users:read: users.info (guest and bot flags, names)
//   - users:read.email: the email in users.info, to find the Okta user
//   - channels:history, groups:history, im:history: conversations.history
//     of the approval channels (public or private) and of DMs, read only
//     when a job is retried after a crash, to find the message an earlier
//     attempt posted (it carries the job's metadata) instead of posting it
//     twice. Without them symbot posts again, and says so once.
var RequiredScopes = []string{"commands", "chat:write", "im:write", "users:read", "users:read.email",
	"channels:history", "groups:history", "im:history"}
