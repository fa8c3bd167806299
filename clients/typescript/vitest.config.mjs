// Unit tests only: test/ holds the integration tests, run from the packed tarball (npm run integration).
export default { test: { include: ["src/**/*.test.ts"] } };
