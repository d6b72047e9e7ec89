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
    std::cerr << "enclosure " << command << ": " << e.what() << "\n" << options;
    return exit_code::kInvalid;
  }
  if (vm.count("help")) {
    std::cout << options;
    return exit_code::kSuccess;
  }
  return std::nullopt;
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
