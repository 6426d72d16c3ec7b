// Built against the installed package: one-rank Buffers whose options the library refuses before
// it touches a GPU. Each refusal must cross the shared library as an epcomm::Error of the right
// category naming the argument (the class's type information is exported), so this runs on any
// machine. Then the CPU reference (epcomm::reference) computes a layout and refuses a bad expert
// index with an epcomm::Error too. Exit status 0 only if all of that holds.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <epcomm/bootstrap.hpp>
#include <epcomm/buffer.hpp>
#include <epcomm/error.hpp>
#include <epcomm/reference.hpp>

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

// 2 ranks, 4 experts (0 and 1 on rank 0), top-2: token 0 picks experts 0 and 1 (rank 0 only),
// token 1 picks 1 and 3 (both ranks), token 2 picks nothing.
bool reference_layout() {
  const epcomm::ref::Geometry geometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 2};
  const epcomm::ref::Layout layout = epcomm::ref::get_dispatch_layout(geometry, {0, 1, 1, 3, -1, -1}, 3, 2);
  const bool counts = layout.num_tokens_per_rank == std::vector<std::int32_t>{2, 1} &&
                      layout.num_tokens_per_expert == std::vector<std::int32_t>{1, 2, 0, 1};
  std::printf("consumer: reference layout: tokens per rank %d, %d\n", layout.num_tokens_per_rank[0],
              layout.num_tokens_per_rank[1]);
  try {
    epcomm::ref::get_dispatch_layout(geometry, {0, 4}, 1, 2);
  } catch (const epcomm::Error& e) {
    std::printf("consumer: reference: caught epcomm::Error [%s] %s\n", epcomm::to_string(e.category()),
                e.message().c_str());
    return counts && e.category() == epcomm::ErrorCategory::kInvalidArgument &&
           e.message().find("topk_idx") != std::string::npos;
  }
  std::printf("consumer: expected epcomm::Error from the reference for expert 4 of 4\n");
  return false;
}

}  // namespace

int main() {
  const bool negative = refused(-1, epcomm::ErrorCategory::kInvalidArgument);
  const bool unsupported = refused(1, epcomm::ErrorCategory::kUnsupported);
  const bool reference = reference_layout();
  return negative && unsupported && reference ? 0 : 1;
}
