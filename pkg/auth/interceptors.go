package auth

import (
	"context"
	"strings"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Policy says which roles may call each method, by full method name
// ("/doorstep.order.v1.OrderService/PlaceOrder"). A method missing from the policy is refused
// to everyone: a new RPC is closed until someone decides who may call it. Health checks and
// reflection are always open.
type Policy map[string][]typesv1.Role

func (p Policy) allows(method string, role typesv1.Role) (known, ok bool) {
	roles, known := p[method]
	if !known {
		return false, false
	}
	for _, r := range roles {
		if r == role {
			return true, true
		}
	}
	return true, false
}

func open(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

func (k *Keys) authorize(ctx context.Context, method string, p Policy) (context.Context, error) {
	if open(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(MetadataKey)
	if len(vals) != 1 {
		return nil, status.Error(codes.Unauthenticated, "no identity: sign in through the gateway")
	}
	id, err := k.Verify(vals[0])
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "identity not accepted: "+err.Error())
	}
	known, ok := p.allows(method, id.Role)
	if !known || !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s", roleName(id.Role), method)
	}
	return WithIdentity(ctx, id), nil
}

func roleName(r typesv1.Role) string { return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_")) }

// UnaryServerInterceptor verifies the caller and applies the policy.
func (k *Keys) UnaryServerInterceptor(p Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := k.authorize(ctx, info.FullMethod, p)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor verifies the caller of a streaming method and applies the policy.
func (k *Keys) StreamServerInterceptor(p Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := k.authorize(ss.Context(), info.FullMethod, p)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// UnaryClientInterceptor gives every outbound call of a service its own SYSTEM identity, naming
// the person whose call it is serving when there is one.
func (k *Keys) UnaryClientInterceptor(service string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		id := Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: service}
		if caller, ok := FromContext(ctx); ok {
			orig := caller.Originator()
			id.OnBehalfOf = &orig
		}
		ctx, err := k.Outgoing(ctx, id)
		if err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// ServerOptions are the options that make a gRPC server verify callers and apply p; pass them to
// grpcx.NewServer.
func (k *Keys) ServerOptions(p Policy) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(k.UnaryServerInterceptor(p)),
		grpc.ChainStreamInterceptor(k.StreamServerInterceptor(p)),
	}
}

// DialOption makes a client connection carry the service's own identity on every call.
func (k *Keys) DialOption(service string) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(k.UnaryClientInterceptor(service))
}
