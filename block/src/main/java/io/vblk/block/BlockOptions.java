package io.vblk.block;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Open options as a flat key/value map with dotted keys, like QEMU's QDict after
 * qdict_flatten: {@code driver=qcow2, file.driver=file, file.filename=a.qcow2, cache.direct=on}.
 * A driver reads its own keys and opens children from the {@code "<child>."} sub-map.
 */
public final class BlockOptions {
    private final Map<String, String> map;

    public BlockOptions() {
        this.map = new LinkedHashMap<>();
    }

    public BlockOptions(Map<String, String> m) {
        this.map = new LinkedHashMap<>(m);
    }

    /** Parses "k=v,k2=v2" (QEMU's -o / --image-opts syntax; ",," escapes a comma). */
    public static BlockOptions parse(String s) throws BlockException {
        BlockOptions o = new BlockOptions();
        if (s == null || s.isEmpty()) {
            return o;
        }
        StringBuilder cur = new StringBuilder();
        java.util.List<String> parts = new java.util.ArrayList<>();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == ',') {
                if (i + 1 < s.length() && s.charAt(i + 1) == ',') {
                    cur.append(',');
                    i++;
                } else {
                    parts.add(cur.toString());
                    cur.setLength(0);
                }
            } else {
                cur.append(c);
            }
        }
        parts.add(cur.toString());
        for (String p : parts) {
            if (p.isEmpty()) continue;
            int eq = p.indexOf('=');
            if (eq <= 0) {
                throw new BlockException(Errno.EINVAL, "Invalid option '" + p + "': expected key=value");
            }
            o.put(p.substring(0, eq), p.substring(eq + 1));
        }
        return o;
    }

    public BlockOptions put(String key, String value) {
        map.put(key, value);
        return this;
    }

    public BlockOptions putIfAbsent(String key, String value) {
        map.putIfAbsent(key, value);
        return this;
    }

    public String get(String key) {
        return map.get(key);
    }

    public String get(String key, String dflt) {
        String v = map.get(key);
        return v != null ? v : dflt;
    }

    public boolean has(String key) {
        return map.containsKey(key);
    }

    public String remove(String key) {
        return map.remove(key);
    }

    public boolean getBool(String key, boolean dflt) throws BlockException {
        String v = map.get(key);
        if (v == null) return dflt;
        return switch (v) {
            case "on", "true", "yes", "1" -> true;
            case "off", "false", "no", "0" -> false;
            default -> throw new BlockException(Errno.EINVAL, "Parameter '" + key + "' expects 'on' or 'off'");
        };
    }

    public long getLong(String key, long dflt) throws BlockException {
        String v = map.get(key);
        if (v == null) return dflt;
        try {
            return Sizes.parse(v);
        } catch (IllegalArgumentException e) {
            throw new BlockException(Errno.EINVAL, "Parameter '" + key + "' expects a size or number, got '" + v + "'");
        }
    }

    /** The keys under {@code prefix + "."}, with the prefix removed. */
    public BlockOptions sub(String prefix) {
        BlockOptions o = new BlockOptions();
        String p = prefix + ".";
        for (Map.Entry<String, String> e : map.entrySet()) {
            if (e.getKey().startsWith(p)) {
                o.map.put(e.getKey().substring(p.length()), e.getValue());
            }
        }
        return o;
    }

    /** Removes every key under {@code prefix + "."}. */
    public void removeSub(String prefix) {
        String p = prefix + ".";
        map.keySet().removeIf(k -> k.startsWith(p));
    }

    public Set<String> keys() {
        return Collections.unmodifiableSet(new TreeSet<>(map.keySet()));
    }

    public Map<String, String> asMap() {
        return Collections.unmodifiableMap(map);
    }

    public BlockOptions copy() {
        return new BlockOptions(map);
    }

    public boolean isEmpty() {
        return map.isEmpty();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, String> e : map.entrySet()) {
            if (!sb.isEmpty()) sb.append(',');
            sb.append(e.getKey()).append('=').append(e.getValue().replace(",", ",,"));
        }
        return sb.toString();
    }
}
