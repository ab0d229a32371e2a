package io.vblk.block;

import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;

/** The driver registry (bdrv_find_format). Built-in drivers plus any found through ServiceLoader. */
public final class BlockDrivers {
    private BlockDrivers() {}

    private static final Map<String, BlockDriverFactory> FACTORIES = new TreeMap<>();
    private static boolean loaded;

    public static synchronized void register(BlockDriverFactory f) {
        FACTORIES.put(f.name(), f);
    }

    public static synchronized BlockDriverFactory find(String name) throws BlockException {
        load();
        BlockDriverFactory f = FACTORIES.get(name);
        if (f == null) {
            throw new BlockException(Errno.EINVAL, "Unknown driver '" + name + "'");
        }
        return f;
    }

    public static synchronized boolean has(String name) {
        load();
        return FACTORIES.containsKey(name);
    }

    public static synchronized Iterable<BlockDriverFactory> all() {
        load();
        return java.util.List.copyOf(FACTORIES.values());
    }

    private static void load() {
        if (loaded) return;
        loaded = true;
        FACTORIES.put("memory", io.vblk.block.drivers.MemoryDriver.FACTORY);
        FACTORIES.put("null", io.vblk.block.drivers.NullDriver.FACTORY);
        FACTORIES.put("raw", io.vblk.block.drivers.RawDriver.FACTORY);
        FACTORIES.put("debug", io.vblk.block.drivers.DebugDriver.FACTORY);
        for (BlockDriverFactory f : ServiceLoader.load(BlockDriverFactory.class, BlockDrivers.class.getClassLoader())) {
            FACTORIES.putIfAbsent(f.name(), f);
        }
    }
}
