// CSS imported from TypeScript is bundled as text (esbuild loader "text").
declare module "*.css" {
  const text: string;
  export default text;
}
