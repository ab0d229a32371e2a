package io.vblk.block;

/**
 * Opens driver instances by name (QEMU's BlockDriver.bdrv_open plus its format_name). Found through
 * {@link BlockDrivers}, which also loads factories listed in
 * {@code META-INF/services/io.vblk.block.BlockDriverFactory}.
 */
public interface BlockDriverFactory {
    /** The name used in {@code driver=} options and {@code -f}. */
    String name();

    /**
     * Opens a driver for {@code node}. The driver opens its children through
     * {@link BlockNode#openChild}. Options the driver does not know are an error.
     */
    BlockDriver open(BlockNode node, BlockOptions options) throws BlockException;

    /** True for format drivers that probe an image (qcow2), used by format probing. */
    default int probe(byte[] firstSector, String filename) {
        return 0;
    }

    /** True for protocol drivers that take {@code filename} directly (file). */
    default boolean isProtocol() {
        return false;
    }
}
