// epcomm::Error -> epcomm.Error (or its per-category subclass, defined in epcomm/errors.py).
#include <nanobind/stl/string.h>

#include <exception>
#include <string>

#include "binding.hpp"

namespace epcomm::py {

namespace {

// The names Python sees in Error.category (epcomm/errors.py maps them to classes): the C++
// category's name with '_' for ' ' ("invalid argument" -> "invalid_argument").
std::string category_name(ErrorCategory category) {
  std::string name = to_string(category);
  for (char& c : name)
    if (c == ' ') c = '_';
  return name;
}

// Sets the Python error for `error`. Runs with the GIL held (nanobind's translators do).
void raise_python(const Error& error) {
  try {
    nb::object errors = nb::module_::import_("epcomm.errors");
    nb::object exc = errors.attr("_from_native")(category_name(error.category()), error.what(),
                                                 error.message(), error.file(), error.line());
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  } catch (const std::exception&) {
    // epcomm.errors could not be imported (a broken install): keep the message at least.
    PyErr_SetString(PyExc_RuntimeError, error.what());
  }
}

}  // namespace

[[noreturn]] void invalid_argument(const std::string& message) {
  throw Error(ErrorCategory::kInvalidArgument, message, __FILE__, __LINE__);
}

void bind_errors(nb::module_& m) {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& error) {
      raise_python(error);
    }
  });
  // Raises epcomm::Error of `category` from C++ (tests of the translation; no GPU needed).
  m.def("_raise_error", [](const std::string& category, const std::string& message) {
    for (int c = 0; c <= static_cast<int>(ErrorCategory::kInternal); ++c) {
      const auto cat = static_cast<ErrorCategory>(c);
      if (category == category_name(cat)) throw Error(cat, message, __FILE__, __LINE__);
    }
    invalid_argument("category: unknown category '" + category + "'");
  });
  m.def("_category_names", [] {
    nb::list names;
    for (int c = 0; c <= static_cast<int>(ErrorCategory::kInternal); ++c)
      names.append(category_name(static_cast<ErrorCategory>(c)));
    return names;
  });
}

}  // namespace epcomm::py
