<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

/**
 * How a `rediss://` connection verifies the server and shows itself: the certificate
 * authorities to trust (else OpenSSL's default ones) and a client certificate with its key, for
 * servers that require one. The server's name is always verified.
 */
final class TlsSettings
{
    public function __construct(
        public readonly ?string $caFile = null,
        public readonly ?string $certFile = null,
        public readonly ?string $keyFile = null,
    ) {
    }

    /** @return list<string> the files named that cannot be read */
    public function unreadableFiles(): array
    {
        return array_values(array_filter(
            [$this->caFile, $this->certFile, $this->keyFile],
            static fn (?string $file): bool => $file !== null && !is_readable($file),
        ));
    }

    /**
     * phpredis' connection context (PHP's `ssl` stream context options).
     *
     * @return array{stream: array<string, string|bool>}
     */
    public function context(): array
    {
        $options = ['verify_peer' => true, 'verify_peer_name' => true];
        if ($this->caFile !== null) {
            $options['cafile'] = $this->caFile;
        }
        if ($this->certFile !== null) {
            $options['local_cert'] = $this->certFile;
        }
        if ($this->keyFile !== null) {
            $options['local_pk'] = $this->keyFile;
        }

        return ['stream' => $options];
    }
}
