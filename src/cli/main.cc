// custos command line: placeholder until the subcommands land.
#include <cstdio>
int main() {
  std::puts("custos: under construction");
  return 0;
}
