#include "launcher/cli/options.h"

#include <iostream>

#include "launcher/base/exit_code.h"

namespace po = boost::program_options;

namespace launcher {

std::optional<int> parse_command_line(const std::string& command, const Args& args,
                                      const po::options_description& options,
                                      po::value_semantic* operands, int max_operands,
                                      po::variables_map& vm) {
  po::options_description hidden;
  hidden.add_options()("file", operands);
  po::positional_options_description positional;
  positional.add("file", max_operands);
  po::options_description all;
  all.add(options).add(hidden);
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(command, e.what(), exit_code::kInvalid);
  }
  if (vm.count("help")) {
    std::cout << options;
    return exit_code::kSuccess;
  }
  return std::nullopt;
}

namespace {

// A word among the options that is not an option's value.
class UnexpectedOperand : public po::error {
 public:
  explicit UnexpectedOperand(const std::string& word)
      : po::error("unexpected \"" + word + "\" among the options") {}
};

}  // namespace

int usage_error(const std::string& command, const std::string& message, int status) {
  std::cerr << "enclosure " << command << ": " << message << " (see enclosure " << command
            << " --help)\n";
  return status;
}

std::optional<int> parse_options_only(const std::string& command, const Args& args,
                                      const po::options_description& options, po::variables_map& vm,
                                      int usage_status, bool missing_dash,
                                      const po::options_description* hidden) {
  po::options_description all;
  all.add(options);
  if (hidden) all.add(*hidden);
  try {
    po::parsed_options parsed = po::command_line_parser(args).options(all).run();
    // An operand among the options (no positional ones are declared): Boost drops it silently.
    for (const po::option& o : parsed.options) {
      if (o.string_key.empty() && !o.value.empty()) throw UnexpectedOperand(o.value.front());
    }
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::string message = e.what();
    // An agent's own options (bash -c, python3 -m) or its name as a stray operand: the usual
    // cause is a forgotten "--" in front of the command.
    bool looks_like_command =
        dynamic_cast<const po::unknown_option*>(&e) || dynamic_cast<const UnexpectedOperand*>(&e);
    if (missing_dash && looks_like_command) {
      message += "; the command to run goes after \"--\": enclosure " + command +
                 " [options] -- CMD [ARG]...";
    }
    return usage_error(command, message, usage_status);
  }
  if (vm.count("help")) {
    std::cout << options;
    return exit_code::kSuccess;
  }
  return std::nullopt;
}

bool has_double_dash(const Args& all) {
  for (const std::string& a : all)
    if (a == "--") return true;
  return false;
}

void split_at_double_dash(const Args& all, Args& options, std::vector<std::string>& command) {
  bool in_command = false;
  for (const std::string& a : all) {
    if (in_command) {
      command.push_back(a);
    } else if (a == "--") {
      in_command = true;
    } else {
      options.push_back(a);
    }
  }
}

}  // namespace launcher
