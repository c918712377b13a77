// Package ordering holds the cross-service tests of ordering (issue 3): the real order and
// supplier services, started by the dev stack on free ports with a fresh PostgreSQL database,
// driven through their gRPC APIs by hundreds of concurrent calls. They check what must hold
// whatever the interleaving: no item oversold, no ration exceeded, no order placed twice, no
// deadlock or serialization error surfacing, and no price above the reference price stored.
// The package has no code besides its tests.
package ordering
