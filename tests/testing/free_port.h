// A loopback TCP port nothing listens on now (the kernel's pick for port 0), for tests that start
// a listener in a child process (a c10d rendezvous). Another process may take it before the
// child binds: tests that use it accept that small race.
#ifndef TUNELEDGER_TESTS_TESTING_FREE_PORT_H_
#define TUNELEDGER_TESTS_TESTING_FREE_PORT_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tuneledger::testing {

// 0 when no socket could be bound.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  return bound ? ntohs(address.sin_port) : 0;
}

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_TESTING_FREE_PORT_H_
