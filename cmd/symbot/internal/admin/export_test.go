package admin

// ServeUntilGrace exposes serveUntil with a chosen grace to the tests.
var ServeUntilGrace = serveUntil
