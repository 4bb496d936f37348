//! TCP connections in a network namespace, read from `/proc/PID/net/tcp` and `tcp6` (the
//! kernel's table of the namespace process PID is in): used to let a replica finish the
//! requests it has accepted before it is stopped.

/// How many TCP connections of the network namespace of process `pid` are being served on
/// one of the local `ports`: in state ESTABLISHED, SYN_RECV or CLOSE_WAIT (the peer is done
/// but the server still answers). 0 when the tables cannot be read (the process is gone).
pub fn serving_connections(pid: i32, ports: &[u16]) -> usize {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .map(|table| count(&table, ports))
        .sum()
}

/// The rows of one `/proc/net/tcp`-format table with a local port in `ports` and a serving
/// state (01 ESTABLISHED, 03 SYN_RECV, 08 CLOSE_WAIT).
fn count(table: &str, ports: &[u16]) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let mut f = l.split_whitespace();
            let (Some(_slot), Some(local), Some(_remote), Some(state)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                return false;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            port.is_some_and(|p| ports.contains(&p)) && matches!(state, "01" | "03" | "08")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_served_connections_on_the_ports() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0200580A:0050 0100580A:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0200580A:0050 0100580A:D2F2 06 00000000:00000000 03:00000A1B 00000000     0        0 0 3 0
   3: 0200580A:0050 0100580A:D2F4 08 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   4: 0200580A:1F90 0100580A:D2F6 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
";
        // The listener (0A) and the TIME_WAIT (06) do not count; port 8080 is not asked.
        assert_eq!(count(t, &[80]), 2);
        assert_eq!(count(t, &[80, 8080]), 3);
        assert_eq!(count(t, &[]), 0);
        assert_eq!(serving_connections(i32::MAX, &[80]), 0);
    }
}
