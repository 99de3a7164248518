//! The one piece of network set-up PID 1 does itself: the loopback interface. Nothing else
//! brings `lo` up on a node without udev or systemd-networkd, and services (and their
//! readiness probes) talk to each other on 127.0.0.1.

use std::os::fd::AsRawFd;

/// Sets IFF_UP on `lo`.
pub fn loopback_up() -> std::io::Result<()> {
    // socket(2): any socket will do as the handle for interface ioctls.
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: ioctl(2) SIOCGIFFLAGS reads the interface named in `req` and writes its flags
    // into the union's ifru_flags; `req` is a valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so ifru_flags is the member that was written.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: ioctl(2) SIOCSIFFLAGS reads the name and flags from `req`, which is valid.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
