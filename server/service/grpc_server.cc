#include "server/service/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/service/rpc_metrics_interceptor.h"

namespace tuneledger {
namespace {

// A builder for one listener, with what both share: no port sharing, a bounded pool, metrics.
void Configure(grpc::ServerBuilder& builder, const std::string& address,
               std::shared_ptr<grpc::ServerCredentials> credentials, int* port,
               const std::string& pool_name, int max_threads, ServerMetrics& metrics) {
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would then share it
  // silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, std::move(credentials), port);
  grpc::ResourceQuota quota(pool_name);
  quota.SetMaxThreads(max_threads);
  builder.SetResourceQuota(quota);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcMetricsInterceptorFactory>(metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
}

absl::Status BindError(const std::string& what, const std::string& address) {
  return absl::UnavailableError(absl::StrCat("cannot serve ", what, " on ", address,
                                             ": the address is in use or not valid here"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              Scheduler& scheduler,
                                                              const Authenticator& authenticator,
                                                              ServerMetrics& metrics) {
  std::unique_ptr<GrpcServer> server(new GrpcServer(scheduler, authenticator));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  Configure(builder, options.listen_address,
            MakeServerCredentials(options.tls, /*require_client_cert=*/false), &server->port_,
            "tuneledger-public", options.max_threads, metrics);
  builder.RegisterService(&server->job_service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return BindError("gRPC", options.listen_address);
  }

  grpc::ServerBuilder worker_builder;
  Configure(worker_builder, options.worker_listen_address,
            MakeServerCredentials(options.tls, !options.tls.client_ca.empty()),
            &server->worker_port_, "tuneledger-workers", options.max_threads, metrics);
  int unix_port = 0;  // gRPC reports 1 for a bound Unix socket
  if (!options.worker_unix_address.empty()) {
    worker_builder.AddListeningPort(options.worker_unix_address, grpc::InsecureServerCredentials(),
                                    &unix_port);
  }
  worker_builder.RegisterService(&server->worker_service_);
  server->worker_server_ = worker_builder.BuildAndStart();
  if (server->worker_server_ == nullptr || server->worker_port_ == 0) {
    return BindError("WorkerService", options.worker_listen_address);
  }
  if (!options.worker_unix_address.empty() && unix_port == 0) {
    return BindError("WorkerService", options.worker_unix_address);
  }

  if (grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::JobService::service_full_name(), true);
  }
  if (grpc::HealthCheckServiceInterface* health = server->worker_server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::WorkerService::service_full_name(), true);
  }
  return server;
}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

void GrpcServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  const auto until = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline);
  for (grpc::Server* listener : {server_.get(), worker_server_.get()}) {
    if (listener == nullptr) continue;
    if (grpc::HealthCheckServiceInterface* health = listener->GetHealthCheckService()) {
      health->SetServingStatus(false);
    }
    listener->Shutdown(until);
  }
  for (grpc::Server* listener : {server_.get(), worker_server_.get()}) {
    if (listener != nullptr) listener->Wait();
  }
}

}  // namespace tuneledger
