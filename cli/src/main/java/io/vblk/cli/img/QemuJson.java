package io.vblk.cli.img;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Pretty-prints JSON exactly as qemu-img does (QEMU's qobject_to_json_pretty): 4-space indent,
 * {@code "key": value}, and object members in QDict iteration order, which is the order of the
 * key's tdb_hash bucket (mod 512), later insertions first within a bucket. Matching that order
 * lets scripts and tests diff our output against qemu-img's byte for byte.
 */
final class QemuJson {
    private QemuJson() {}

    private static final int BUCKETS = 512;

    /** QDict's tdb_hash(key) % QDICT_BUCKET_MAX. */
    static int bucket(String key) {
        byte[] b = key.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int v = 0x238F13AF * b.length;
        for (int i = 0; i < b.length; i++) {
            v += (b[i] & 0xff) << (i * 5 % 24);
        }
        int h = 1103515243 * v + 12345;
        return (int) (Integer.toUnsignedLong(h) % BUCKETS);
    }

    /** Serializes a value: Map (object, insertion ordered), List, String, Number, Boolean. */
    static String pretty(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v, 0);
        return sb.toString();
    }

    private static void indent(StringBuilder sb, int level) {
        sb.append("    ".repeat(level));
    }

    @SuppressWarnings("unchecked")
    private static void write(StringBuilder sb, Object v, int level) {
        if (v instanceof Map<?, ?> m) {
            List<Map.Entry<String, Object>> entries = new ArrayList<>();
            for (Map.Entry<?, ?> e : m.entrySet()) entries.add((Map.Entry<String, Object>) e);
            // stable sort by bucket; within a bucket the last inserted comes first
            List<Map.Entry<String, Object>> rev = new ArrayList<>(entries);
            java.util.Collections.reverse(rev);
            rev.sort(java.util.Comparator.comparingInt(e -> bucket(e.getKey())));
            if (rev.isEmpty()) {
                sb.append("{}");
                return;
            }
            sb.append("{\n");
            for (int i = 0; i < rev.size(); i++) {
                indent(sb, level + 1);
                sb.append(quote(rev.get(i).getKey())).append(": ");
                write(sb, rev.get(i).getValue(), level + 1);
                if (i + 1 < rev.size()) sb.append(',');
                sb.append('\n');
            }
            indent(sb, level);
            sb.append('}');
        } else if (v instanceof List<?> l) {
            if (l.isEmpty()) {
                sb.append("[]");
                return;
            }
            sb.append("[\n");
            for (int i = 0; i < l.size(); i++) {
                indent(sb, level + 1);
                write(sb, l.get(i), level + 1);
                if (i + 1 < l.size()) sb.append(',');
                sb.append('\n');
            }
            indent(sb, level);
            sb.append(']');
        } else if (v instanceof String s) {
            sb.append(quote(s));
        } else {
            sb.append(v);
        }
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || c == 0x7f) sb.append(String.format("\\u%04X", (int) c));
                    else sb.append(c);
                }
            }
        }
        return sb.append('"').toString();
    }
}
