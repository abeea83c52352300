// Internal: LaTeX normalization before parsing (math_verify's
// NormalizationConfig with basic_latex, units, malformed_operators and nits on).
#pragma once

#include <string>
#include <string_view>

namespace rv::eval::math::detail {

enum class BoxedMode { All, Last };

// The contents of the \boxed{...}/\fbox{...} groups in `text`, joined by ","
// (All), or only the last one together with boxes right before it that are
// separated by a short gap or "and"/"or"/","/";" (Last). Text without a box is
// returned unchanged. An unclosed last box yields the rest of the text.
std::string extract_boxed(std::string_view text, BoxedMode mode);

std::string normalize_latex(std::string_view text, BoxedMode mode);

}  // namespace rv::eval::math::detail
