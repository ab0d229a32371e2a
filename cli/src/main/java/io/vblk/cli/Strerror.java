package io.vblk.cli;

import io.vblk.block.Errno;

/**
 * strerror() text alone ("Input/output error"), for the lines that must read exactly as qemu-io's
 * and qemu-img's ("read failed: Input/output error"). Elsewhere vblk names the errno too.
 */
final class Strerror {
    private Strerror() {}

    static String of(int errno) {
        String d = Errno.describe(errno);       // "EIO (Input/output error)" or "EIO"
        int open = d.indexOf(" (");
        return open >= 0 && d.endsWith(")") ? d.substring(open + 2, d.length() - 1) : d;
    }
}
