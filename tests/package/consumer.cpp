// Built against the installed package: a one-rank Buffer whose options the library refuses before
// it touches a GPU. The refusal must cross the shared library as an epcomm::Error of the right
// category naming the argument (the class's type information is exported), so this runs on any
// machine. Exit status 0 only if all of that holds.
#include <cstdio>
#include <cstring>
#include <memory>

#include <epcomm/bootstrap.hpp>
#include <epcomm/buffer.hpp>
#include <epcomm/error.hpp>

int main() {
  std::shared_ptr<epcomm::Bootstrap> bootstrap = epcomm::make_callback_bootstrap(
      0, 1, [](const void* in, void* out, std::size_t bytes) { std::memcpy(out, in, bytes); });
  epcomm::BufferOptions options;
  options.num_nvl_bytes = 1 << 20;
  options.num_rdma_bytes = -1;
  try {
    epcomm::Buffer buffer(bootstrap, options);
  } catch (const epcomm::Error& e) {
    const bool named = e.message().find("num_rdma_bytes") != std::string::npos;
    const bool category = e.category() == epcomm::ErrorCategory::kInvalidArgument;
    std::printf("consumer: caught epcomm::Error [%s] %s\n", epcomm::to_string(e.category()),
                e.message().c_str());
    return named && category ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("consumer: expected epcomm::Error, caught another exception: %s\n", e.what());
    return 1;
  }
  std::printf("consumer: expected epcomm::Error for num_rdma_bytes = -1, the Buffer was made\n");
  return 1;
}
