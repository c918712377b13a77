package grpcapi

import (
	"testing"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
)

// A method missing from the policy is refused to everyone; an RPC added to the proto must be
// given its roles here, and the policy names no method the service does not have.
func TestPolicyCoversEveryRPC(t *testing.T) {
	desc := orderv1.OrderService_ServiceDesc
	methods := map[string]bool{}
	for _, m := range desc.Methods {
		name := "/" + desc.ServiceName + "/" + m.MethodName
		methods[name] = true
		if len(Policy[name]) == 0 {
			t.Errorf("%s has no roles in the policy", name)
		}
	}
	if len(desc.Streams) != 0 {
		t.Errorf("streaming RPCs %v: give them roles and test them", desc.Streams)
	}
	for name := range Policy {
		if !methods[name] {
			t.Errorf("the policy names %s, which the service does not have", name)
		}
	}
}
