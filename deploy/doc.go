// Package deploy holds the tests of rockety-bridge's deployment files: the
// Helm chart in helm/rockety-bridge, the plain manifests in kubernetes/, the
// examples and the NATS permissions documented in README.md.
//
// It is a module of its own so that its dependencies (k8s.io/api, the
// Prometheus query parser, sigs.k8s.io/yaml) stay out of the bridge's
// module. Run the tests with `cd deploy && go test ./...`; the first run
// downloads Helm through the Go module proxy and builds it.
package deploy
