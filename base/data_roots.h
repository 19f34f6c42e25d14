// Data roots: the folders whose files jobs may name (model_path, train_path, valid_path).
//
//   --data-root DIR           a root for every tenant
//   --data-root TENANT=DIR    a root for one tenant only
//
// A path is allowed when it lies inside one of the caller's roots after every symbolic link
// is resolved; `..` cannot leave a root, and neither can a link inside it. A relative path is
// relative to a root: the first of the tenant's roots (its own first, then the shared ones)
// where it exists, else the first root. The server checks each spec at submit and stores the
// resolved absolute paths; every worker checks them again against its own roots before the
// trainer starts, so the trainer reads nothing the operator did not put in a root.
//
// The refusal message is the same whether or not the path exists, so it tells a tenant nothing
// about files outside its roots.
//
// Thread safety: immutable after construction; Resolve is const and may run on many threads.
#ifndef TUNELEDGER_BASE_DATA_ROOTS_H_
#define TUNELEDGER_BASE_DATA_ROOTS_H_

#include <optional>
#include <string>
#include <vector>

namespace tuneledger {

class DataRoots {
 public:
  struct Root {
    std::string tenant;  // empty: every tenant
    std::string dir;     // canonical absolute path
  };

  DataRoots() = default;
  // From --data-root values; an error names the value (empty, not a folder, TENANT= empty).
  static std::optional<DataRoots> Parse(const std::vector<std::string>& values, std::string* error);

  bool empty() const { return roots_.empty(); }
  const std::vector<Root>& roots() const { return roots_; }

  // The canonical absolute path of `path` when it is inside one of `tenant`'s roots (its own
  // and the shared ones); nullopt otherwise. `any_tenant` also accepts every other tenant's
  // roots: a worker, which runs leases of every tenant, checks with it.
  std::optional<std::string> Resolve(const std::string& tenant, const std::string& path,
                                     bool any_tenant = false) const;

  // "/data/a, /data/b (tenant t)": for messages and logs.
  std::string Describe() const;

 private:
  std::vector<Root> roots_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_DATA_ROOTS_H_
