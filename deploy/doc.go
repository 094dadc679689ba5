// Package deploy holds no code: its tests check symbot's deployment
// artefacts (the build script, container image, compose files, systemd
// unit, Helm chart, Terraform module and Prometheus rules) against the real
// binary. It is a module of its own so that the Helm, HCL and Prometheus
// libraries the tests use stay out of symbot's dependencies.
package deploy
