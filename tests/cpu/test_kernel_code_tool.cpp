// tools/probes/kernel_code.py --from-disasm on a listing laid out as nvdisasm --print-line-info
// writes it: instructions counted per kernel and per source line, calls named by callee, and the
// lines of other sections (constants, relocations) not counted as code. Skipped without python3.
#include <gtest/gtest.h>

#include <string>

#include "python_tool.hpp"

namespace epcomm {
namespace {

constexpr const char* kListing = R"(	.section	.nv.constant0.kernel_a,"a",@progbits
        /*0000*/ 	.byte	0x00, 0x00
	.section	.text.kernel_a,"ax",@progbits
.text.kernel_a:
kernel_a:
	//## File "/src/low_latency/a.cuh", line 10
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   IMAD.MOV.U32 R4, RZ, RZ, R2 ;
	//## File "/src/low_latency/b.cuh", line 20
        /*0020*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_s64) ;
        /*0030*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_s64) ;
        /*0040*/                   CALL.REL.NOINC `($__internal_1_$__cuda_sm20_rem_s64) ;
        /*0050*/                   EXIT ;
	.section	.text.kernel_b,"ax",@progbits
.text.kernel_b:
kernel_b:
	//## File "/src/c.cu", line 5
        /*0000*/                   EXIT ;
	.section	.nv.info.kernel_b,"",@"SHT_CUDA_INFO"
        /*0000*/ 	.byte	0x04, 0x2f
)";

TEST(KernelCodeTool, CountsInstructionsCallsAndLines) {
  const test::TempFile listing(kListing);
  std::string out;
  const int rc =
      test::run_python_tool("tools/probes/kernel_code.py", "--top 3 --from-disasm " + listing.path, out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("kernel_a\n  instructions 6; calls: 2 x __cuda_sm20_div_s64, 1 x __cuda_sm20_rem_s64"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("         4  b.cuh:20"), std::string::npos) << out;
  EXPECT_NE(out.find("         2  a.cuh:10"), std::string::npos) << out;
  EXPECT_NE(out.find("kernel_b\n  instructions 1; calls: none"), std::string::npos) << out;
}

}  // namespace
}  // namespace epcomm
