/** The pipeline moved to src/pipeline/; these names stay for the callers that import them from here. */
export {ALL_FEATURES, buildTunnelHooks, type TunnelFeatures, type TunnelHooksContext} from '../pipeline/index.js'
