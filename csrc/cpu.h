// Run-time CPU feature detection, so ISA-specific translation units are only entered on CPUs that have them.
#pragma once

namespace bortfast {

bool cpu_has_avx2_fma();

}  // namespace bortfast
