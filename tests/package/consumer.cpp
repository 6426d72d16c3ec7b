// Built against the installed package: one-rank Buffers whose options the library refuses before
// it touches a GPU. Each refusal must cross the shared library as an epcomm::Error of the right
// category naming the argument (the class's type information is exported), so this runs on any
// machine. Exit status 0 only if all of that holds.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <epcomm/bootstrap.hpp>
#include <epcomm/buffer.hpp>
#include <epcomm/error.hpp>

namespace {

bool refused(std::int64_t num_rdma_bytes, epcomm::ErrorCategory expected) {
  std::shared_ptr<epcomm::Bootstrap> bootstrap = epcomm::make_callback_bootstrap(
      0, 1, [](const void* in, void* out, std::size_t bytes) { std::memcpy(out, in, bytes); });
  epcomm::BufferOptions options;
  options.num_nvl_bytes = 1 << 20;
  options.num_rdma_bytes = num_rdma_bytes;
  try {
    epcomm::Buffer buffer(bootstrap, options);
  } catch (const epcomm::Error& e) {
    std::printf("consumer: num_rdma_bytes = %lld: caught epcomm::Error [%s] %s\n",
                static_cast<long long>(num_rdma_bytes), epcomm::to_string(e.category()), e.message().c_str());
    return e.category() == expected && e.message().find("num_rdma_bytes") != std::string::npos;
  } catch (const std::exception& e) {
    std::printf("consumer: expected epcomm::Error, caught another exception: %s\n", e.what());
    return false;
  }
  std::printf("consumer: expected epcomm::Error for num_rdma_bytes = %lld, the Buffer was made\n",
              static_cast<long long>(num_rdma_bytes));
  return false;
}

}  // namespace

int main() {
  const bool negative = refused(-1, epcomm::ErrorCategory::kInvalidArgument);
  const bool unsupported = refused(1, epcomm::ErrorCategory::kUnsupported);
  return negative && unsupported ? 0 : 1;
}
