// Records every RPC's latency by full method name and status code into
// ServerMetrics::ObserveRpc, as a server interceptor, so that no handler can forget it (health
// and reflection calls included). A stream's latency is its whole life.
// Thread safety: the factory is shared by all calls; each interceptor belongs to one call.
#ifndef TUNELEDGER_SERVER_SERVICE_RPC_METRICS_INTERCEPTOR_H_
#define TUNELEDGER_SERVER_SERVICE_RPC_METRICS_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include "server/metrics/server_metrics.h"

namespace tuneledger {

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(ServerMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics& metrics_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_RPC_METRICS_INTERCEPTOR_H_
