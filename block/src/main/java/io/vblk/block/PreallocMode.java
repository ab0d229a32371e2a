package io.vblk.block;

import java.util.Locale;

/** Preallocation for create and truncate: QEMU's PreallocMode. */
public enum PreallocMode {
    OFF, METADATA, FALLOC, FULL;

    public static PreallocMode parse(String s) throws BlockException {
        if (s == null) {
            return OFF;
        }
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "off" -> OFF;
            case "metadata" -> METADATA;
            case "falloc" -> FALLOC;
            case "full" -> FULL;
            default -> throw new BlockException(Errno.EINVAL, "Invalid parameter '" + s + "' for preallocation");
        };
    }

    public String optionName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
